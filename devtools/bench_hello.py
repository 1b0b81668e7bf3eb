"""The smallest HTTP function: the baseline the benchmark compares the events function to."""

import functions_framework


@functions_framework.http
def hello(request):
    return "ok"
