#!/usr/bin/env python3
"""tests/llm_server.py - a deterministic stand-in for an OpenAI-compatible LLM server.

Used by tests/test_tagger_openai.c (standard library only). It answers
POST .../chat/completions with replies derived from the prompt text:

  - a domain prompt (no "Tags: [...]" line) gets a tag list. With n = the number in
    "List N" and s = the request's "seed", it is POOL[:n] with entry s % n replaced by
    "noise<s>", so different seeds give different lists and frequency voting over three
    seeds recovers POOL[:n]. Tags come back in mixed case and padded to exercise the
    client's normalisation; scores are 1 - i / (2n).
  - a scoring prompt ("Tags: [JSON list]" then lines "ID: title") gets, for every item,
    each tag that occurs in the title (case-insensitively) with score
    10 + (len(title) + len(tag)) % 90, plus an unknown tag "bogus"; items in reverse order.

Usage: llm_server.py STATE_DIR. The server binds 127.0.0.1 on a free port and writes it
to STATE_DIR/port. Before each request it reads STATE_DIR/scenario.json (absent = all
fine), a JSON object with any of:
  fail_first:  list of failure kinds given to the 1st, 2nd, ... request of the same prompt
  fail_always: failure kind given to every matching request
  match:       only prompts containing this text are subject to the failures ("" = all)
  kind:        "score", "vote" or "any" (default): which prompts the failures apply to
  ok_limit:    after this many successful replies every request gets limit_failure
  limit_failure: failure kind after ok_limit (default "drop")
  expect_key:  require "Authorization: Bearer <expect_key>", else 401
  slow_s:      how long the "slow" failure sleeps before answering (default 5)
  delay_s:     sleep before every successful reply (to observe concurrency)
  wrap:        true: answers come the way chatty and reasoning models give them, after a
               <think> block holding braces and inside a ```json fence
Failure kinds: 500, 503, 429, 404, drop (close without a reply), truncated_body (a reply cut
short of its Content-Length), bad_envelope (HTTP 200, body not JSON), not_json (content is
prose), truncated_content (content JSON cut in half, finish_reason "length"), cut_content
(the same with finish_reason "stop", as a broken proxy might give), slow.
After every request it rewrites STATE_DIR/stats.json: requests, vote_requests,
score_requests, ok, failures (by kind), seeds, auth (distinct Authorization values),
temperatures, models, max_inflight, paths.
The server exits when its parent process dies or after 300 s without requests.
"""
import hashlib
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

POOL = ["spicy", "sweet", "baked", "grilled", "vegan", "crunchy", "steel", "wooden",
        "ceramic", "electric", "compact", "classic", "organic", "frozen", "smoked", "fresh"]

STATE_DIR = sys.argv[1] if len(sys.argv) > 1 else "."
LOCK = threading.Lock()
STATS = {"requests": 0, "vote_requests": 0, "score_requests": 0, "ok": 0, "failures": {},
         "seeds": [], "auth": [], "temperatures": [], "models": [], "max_inflight": 0,
         "paths": []}
ATTEMPTS = {}  # prompt digest -> requests seen
INFLIGHT = [0]
LAST_SEEN = [time.monotonic()]


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def scenario():
    try:
        with open(os.path.join(STATE_DIR, "scenario.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def vote_reply(prompt, seed):
    m = re.search(r"List (\d+)", prompt)
    n = int(m.group(1)) if m else 5
    n = max(1, min(n, len(POOL)))
    tags = list(POOL[:n])
    tags[seed % n] = "noise%d" % seed
    shown = []
    for i, t in enumerate(tags):
        name = t.title() if i % 2 == 0 else "  " + t + " "
        shown.append({"tag": name, "score": round(1.0 - i / (2.0 * n), 4)})
    return json.dumps({"tags": shown})


def score_reply(prompt):
    m = re.search(r"^Tags: (\[.*\])\s*$", prompt, re.M)
    tags = json.loads(m.group(1))
    items = re.findall(r"^(\d+): (.*)$", prompt[m.end():], re.M)
    out = []
    for ident, title in reversed(items):
        scores = {}
        for t in tags:
            if t.lower() in title.lower():
                scores[t.upper()] = 10 + (len(title.encode()) + len(t.encode())) % 90
        scores["bogus"] = 50
        out.append({"id": int(ident), "tags": scores})
    return json.dumps({"items": out})


def envelope(content, finish="stop"):
    return json.dumps({"id": "chatcmpl-test", "object": "chat.completion", "model": "test",
                       "choices": [{"index": 0, "finish_reason": finish,
                                    "message": {"role": "assistant", "content": content}}]})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep the test output quiet
        pass

    def send_body(self, status, body, headers=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        sc = scenario()
        with LOCK:
            INFLIGHT[0] += 1
            STATS["max_inflight"] = max(STATS["max_inflight"], INFLIGHT[0])
        self.inflight = True
        try:
            self.handle_chat(raw, sc)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self.leave()

    def leave(self):
        """No longer in flight: called before the reply goes out, since the client may start
        its next request as soon as it has the reply."""
        if self.inflight:
            self.inflight = False
            with LOCK:
                INFLIGHT[0] -= 1

    def handle_chat(self, raw, sc):
        req = json.loads(raw)
        prompt = req["messages"][-1]["content"]
        is_score = re.search(r"^Tags: \[", prompt, re.M) is not None
        digest = hashlib.sha256(raw).hexdigest()
        auth = self.headers.get("Authorization")
        with LOCK:
            LAST_SEEN[0] = time.monotonic()
            STATS["requests"] += 1
            STATS["score_requests" if is_score else "vote_requests"] += 1
            if not is_score:
                STATS["seeds"].append(req.get("seed"))
            if auth is not None and auth not in STATS["auth"]:
                STATS["auth"].append(auth)
            STATS["temperatures"].append(req.get("temperature"))
            if req.get("model") not in STATS["models"]:
                STATS["models"].append(req.get("model"))
            if self.path not in STATS["paths"]:
                STATS["paths"].append(self.path)
            attempt = ATTEMPTS.get(digest, 0)
            ATTEMPTS[digest] = attempt + 1
            failure = None
            kind = sc.get("kind", "any")
            applies = (sc.get("match", "") in prompt and
                       (kind == "any" or (kind == "score") == is_score))
            if "expect_key" in sc and auth != "Bearer " + sc["expect_key"]:
                failure = "401"
            elif "ok_limit" in sc and STATS["ok"] >= sc["ok_limit"]:
                failure = sc.get("limit_failure", "drop")
            elif applies and sc.get("fail_always"):
                failure = sc["fail_always"]
            elif applies and attempt < len(sc.get("fail_first", [])):
                failure = sc["fail_first"][attempt]
            if failure is None:
                STATS["ok"] += 1
            else:
                STATS["failures"][failure] = STATS["failures"].get(failure, 0) + 1
            write_atomic(os.path.join(STATE_DIR, "stats.json"), json.dumps(STATS))

        content = score_reply(prompt) if is_score else vote_reply(prompt, int(req.get("seed") or 0))
        if sc.get("wrap"):
            content = ("<think>The user wants {JSON}; tags [like these] ...</think>\nHere you go:\n```json\n"
                       + content + "\n```\nHope this helps {:}")
        if failure is None and sc.get("delay_s"):
            time.sleep(float(sc["delay_s"]))
        if failure == "slow":
            time.sleep(float(sc.get("slow_s", 5)))
        self.leave()
        if failure is None or failure == "slow":
            self.send_body(200, envelope(content))
        elif failure in ("500", "503", "429", "404", "401"):
            hdrs = [("Retry-After", "0")] if failure == "429" else []
            self.send_body(int(failure), json.dumps({"error": {"message": "scripted " + failure}}), hdrs)
        elif failure == "drop":
            self.close_connection = True
        elif failure == "truncated_body":
            data = envelope(content).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif failure == "bad_envelope":
            self.send_body(200, "<html>upstream error</html>")
        elif failure == "not_json":
            self.send_body(200, envelope("Sure! Here are the scores you asked for: spicy is great."))
        elif failure == "truncated_content":
            self.send_body(200, envelope(content[: len(content) // 2], "length"))
        elif failure == "cut_content":
            self.send_body(200, envelope(content[: len(content) * 2 // 3], "stop"))
        else:
            self.send_body(500, json.dumps({"error": {"message": "unknown scripted failure " + failure}}))


def watchdog(server, parent):
    while True:
        time.sleep(0.2)
        if os.getppid() != parent or time.monotonic() - LAST_SEEN[0] > 300:
            server.shutdown()
            return


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    write_atomic(os.path.join(STATE_DIR, "port"), str(server.server_address[1]))
    threading.Thread(target=watchdog, args=(server, os.getppid()), daemon=True).start()
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
