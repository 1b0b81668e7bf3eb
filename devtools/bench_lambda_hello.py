"""The smallest Lambda handler: the baseline the AWS benchmark compares the events function to."""


def handler(event, context):
    return {"statusCode": 200, "body": "ok"}
