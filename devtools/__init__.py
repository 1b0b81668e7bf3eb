"""Development-only tools: local servers for tests, the benchmark and local runs.

Nothing here is deployed (.gcloudignore leaves devtools/ out of the upload) and
production code never imports it.
"""
