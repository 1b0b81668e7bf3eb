"""The one exception for a request the function refuses to store."""


class RequestRejected(Exception):
    """A client error: the status to answer and a message naming the problem."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
