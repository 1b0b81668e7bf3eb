"""A function that says whether main.client_socket finds the client's socket where
functions-framework's server serves it (tests/test_request_bodies.py)."""

import socket

import flask
import functions_framework

import main


@functions_framework.http
def reports_client_socket(request: flask.Request) -> flask.Response:
    return flask.jsonify(client_socket=isinstance(main.client_socket(request), socket.socket))
