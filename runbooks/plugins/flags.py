#!/usr/bin/env python3
"""A runbook step plugin (protocol 1): feature flags on an HTTP flag service.

Kinds:
  flags.get  read a flag (read only)
  flags.set  set a flag; undone by setting it back to the value it had

The service answers `GET /flags/NAME` with {"name", "value"} and `PUT
/flags/NAME` with {"value": bool} with {"name", "previous", "value"}; a PUT
carries `x-api-key` and an `idempotency-key`, so that a retried attempt whose
first answer was lost reports the same `previous`. Python's standard library
only.

    ./flags.py describe
    echo '{"protocol": 1, "kind": "get", "params": {...}, ...}' | ./flags.py run
"""

import json
import sys
import urllib.error
import urllib.parse
import urllib.request

PROTOCOL = 1
TIMEOUT_S = 10

CONNECTION = {
    "api_url": {"type": "string", "description": "Base URL of the flag service, such as `http://127.0.0.1:8080`."},
    "flag": {"type": "string", "minLength": 1, "description": "The flag's name, such as `checkout_v2`."},
}

KINDS = [
    {
        "name": "get",
        "summary": "Read a feature flag.",
        "params": {
            "type": "object",
            "properties": CONNECTION,
            "required": ["api_url", "flag"],
            "additionalProperties": False,
        },
        "read_only": True,
        "describe": "read flag {{ params.flag }} at {{ params.api_url }}",
    },
    {
        "name": "set",
        "summary": "Set a feature flag; undone by setting it back.",
        "params": {
            "type": "object",
            "properties": {
                **CONNECTION,
                "value": {"type": "boolean", "description": "The value to set."},
                "api_key": {"type": "string", "description": "Sent in `x-api-key`; pass a secret."},
            },
            "required": ["api_url", "flag", "value"],
            "additionalProperties": False,
        },
        "undo": True,
        "describe": "set flag {{ params.flag }} to {{ params.value }} at {{ params.api_url }}",
    },
]


def say(message):
    """One protocol message: a line of JSON on stdout."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def log(message, level="info"):
    say({"type": "log", "level": level, "message": message})


class Failure(Exception):
    """The step fails: the message, whether a retry may help, what is known."""

    def __init__(self, message, retryable, result=None):
        super().__init__(message)
        self.retryable = retryable
        self.result = result


def call(method, params, body=None, headers=None):
    """The service's JSON answer to METHOD /flags/FLAG, or a Failure."""
    flag = params["flag"]
    url = params["api_url"].rstrip("/") + "/flags/" + urllib.parse.quote(flag, safe="")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("accept", "application/json")
    if data is not None:
        request.add_header("content-type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        reason = e.read().decode(errors="replace")[:500]
        try:
            reason = json.loads(reason).get("error", reason)
        except (ValueError, AttributeError):
            pass
        # A refusal (4xx) is answered the same way the next time; a
        # server error (5xx) may pass.
        raise Failure(
            f"{method} {url} answered {e.code}: {reason}",
            retryable=e.code >= 500,
            result={"flag": flag, "status": e.code},
        ) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise Failure(f"cannot reach {url}: {reason}", retryable=True, result={"flag": flag, "status": None}) from None
    except ValueError as e:
        raise Failure(f"{method} {url} answered something that is not JSON: {e}", retryable=True) from None


def answered(answer, *fields):
    """The answer, when it has these fields: a service that answers
    otherwise is not one this plugin knows, and will not be on retry."""
    missing = [f for f in fields if not isinstance(answer, dict) or f not in answer]
    if missing:
        raise Failure(f"the flag service answered without {', '.join(missing)}: {answer!r:.200}", retryable=False)
    return answer


def read_flag(request):
    params = request["params"]
    status, answer = call("GET", params)
    value = answered(answer, "value")["value"]
    log(f"flag {params['flag']} is {json.dumps(value)}")
    return {"flag": params["flag"], "value": value, "status": status}


def put(params, value, idempotency_key):
    if not isinstance(value, bool):
        raise Failure(f"`value` must be true or false, not {json.dumps(value)}", retryable=False)
    headers = {"idempotency-key": idempotency_key}
    if params.get("api_key"):
        headers["x-api-key"] = params["api_key"]
    status, answer = call("PUT", params, {"value": value}, headers)
    return status, answered(answer, "previous", "value")


def set_flag(request):
    params = request["params"]
    say({"type": "progress", "message": f"setting flag {params['flag']}"})
    status, answer = put(params, params["value"], request["idempotency_key"])
    if answer.get("replayed"):
        log("the service had made this change already, for an earlier attempt", "warn")
    log(f"flag {params['flag']} was {json.dumps(answer['previous'])}, now {json.dumps(answer['value'])}")
    return {"flag": params["flag"], "previous": answer["previous"], "value": answer["value"], "status": status}


def undo_set_flag(request):
    params, result = request["params"], request.get("result") or {}
    if not isinstance(result.get("previous"), bool):
        raise Failure("cannot undo: the step's result does not say what the flag was", retryable=False)
    say({"type": "progress", "message": f"setting flag {params['flag']} back"})
    # The engine gives an undo an idempotency key of its own: it is a change
    # of its own, not a retry of the step's.
    status, answer = put(params, result["previous"], request["idempotency_key"])
    log(f"flag {params['flag']} is {json.dumps(answer['value'])} again")
    return {"flag": params["flag"], "value": answer["value"], "status": status}


def run(request):
    if request.get("protocol") != PROTOCOL:
        raise Failure(f"this plugin speaks protocol {PROTOCOL}, not {request.get('protocol')}", retryable=False)
    kind, undo = request.get("kind"), request.get("undo", False)
    if kind == "get" and not undo:
        return read_flag(request)
    if kind == "set":
        return undo_set_flag(request) if undo else set_flag(request)
    raise Failure(f"no kind `{kind}`{' that can undo' if undo else ''}", retryable=False)


def main(argv):
    command = argv[1] if len(argv) == 2 else None
    if command == "describe":
        say({"protocol": PROTOCOL, "kinds": KINDS})
        return 0
    if command != "run":
        print("usage: flags.py describe | run", file=sys.stderr)
        return 2
    try:
        request = json.load(sys.stdin)
        say({"type": "ok", "result": run(request)})
    except Failure as e:
        final = {"type": "error", "message": str(e), "retryable": e.retryable}
        if e.result is not None:
            final["result"] = e.result
        say(final)
    except KeyError as e:
        # A request this plugin cannot read is not going to read on retry.
        say({"type": "error", "message": f"the request has no `{e.args[0]}`", "retryable": False})
    except (ValueError, TypeError) as e:
        say({"type": "error", "message": f"cannot read the request: {e}", "retryable": False})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
