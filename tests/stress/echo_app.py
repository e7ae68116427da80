"""The benchmark's web baseline: a bare Flask JSON echo endpoint."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/echo")
def echo():
    return jsonify(request.get_json()), 202
