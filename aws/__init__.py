"""The AWS Lambda entry point (lambda_function.py) and its event translation; deploy.sh deploys it."""
