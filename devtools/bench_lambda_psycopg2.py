"""CockroachDB's Lambda sample pattern (serverless best-practices page): a psycopg2
SimpleConnectionPool of 0..1 created in the handler when it does not exist yet,
one INSERT and a commit per invocation. The sample never returns the connection
to the pool, so its second invocation would find the pool exhausted; putconn is
the one line added."""

import json
import os

from psycopg2.pool import SimpleConnectionPool

pool = None


def handler(event, context):
    global pool
    if not pool:
        pool = SimpleConnectionPool(0, 1, dsn=os.environ["DATABASE_URL"])
    connection = pool.getconn()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO events (kind, payload) VALUES (%s, %s)",
                ("psycopg2-sample", json.dumps({"n": 1})),
            )
        connection.commit()
    finally:
        pool.putconn(connection)
    return {"statusCode": 201, "body": "{}"}
