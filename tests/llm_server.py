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
  variant:     the answer in another shape real servers give, with the same scores:
               "prose" (JSON then prose, no fence), "string_scores" (scores as "80" and
               "80%"), "renamed" (votes under "tag_list" with "name"; items under "item_id" or
               "item" with "scores" or "tag_scores", tag names padded), "keyed" ({"items":
               {"1": {"scores": {...}}}}), "keyed_root" ({"1": {...tag scores}}),
               "out_of_range" (tags of the title at score + 100, every other listed tag -1)
  reject_format: list of response_format types ("json_schema", "json_object") answered
               with HTTP 400 naming response_format, as servers without that support do
  obey_schema: true: with a json_schema response_format, score the tags the schema names
               (its item tags properties) instead of those of the prompt, 0 for absent ones
  usage:       completion_tokens reported in every reply's "usage"
  props:       the JSON object GET /props answers (llama.cpp's server properties, e.g.
               {"default_generation_settings": {"n_ctx": 600}, "total_slots": 2}); absent: 404
A scoring request whose json_schema lists the tags as an enum (the tagger's scoring: choose)
gets, per item, the names of the tags in its title, highest score first, at most maxItems.
Failure kinds: 500, 503, 429, 404, drop (close without a reply), truncated_body (a reply cut
short of its Content-Length), bad_envelope (HTTP 200, body not JSON), not_json (content is
prose), truncated_content (content JSON cut in half, finish_reason "length"), cut_content
(the same with finish_reason "stop", as a broken proxy might give), slow, huge (the right
answer followed by 2 MB of blanks).
After every request it rewrites STATE_DIR/stats.json: requests, vote_requests,
score_requests, ok, failures (by kind), seeds, auth (distinct Authorization values),
temperatures, models, max_inflight, paths, formats ("vote:json_schema", "score:none", ...:
request counts), rejected_formats, last_vote_format and last_score_format (the last
response_format object of each kind, null when none was sent).
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
         "paths": [], "formats": {}, "rejected_formats": 0, "last_vote_format": None,
         "last_score_format": None, "score_batch_sizes": [], "props_requests": 0}
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


def vote_reply(prompt, seed, variant=None):
    m = re.search(r"List (\d+)", prompt)
    n = int(m.group(1)) if m else 5
    n = max(1, min(n, len(POOL)))
    tags = list(POOL[:n])
    tags[seed % n] = "noise%d" % seed
    shown = []
    for i, t in enumerate(tags):
        name = t.title() if i % 2 == 0 else "  " + t + " "
        shown.append({"tag": name, "score": round(1.0 - i / (2.0 * n), 4)})
    if variant == "renamed":
        return json.dumps({"domain": "x", "tag_list": [{"name": e["tag"], "score": str(e["score"])} for e in shown]})
    if variant == "prose":
        return json.dumps({"tags": shown}) + "\nThese tags cover the domain well."
    return json.dumps({"tags": shown})


def schema_tags(rf):
    """The tag names a json_schema response_format asks for, or None."""
    try:
        item = rf["json_schema"]["schema"]["properties"]["items"]["items"]
        return list(item["properties"]["tags"]["properties"].keys())
    except (KeyError, TypeError):
        return None


def score_reply(prompt, variant=None, tags=None):
    m = re.search(r"^Tags: (\[.*\])\s*$", prompt, re.M)
    listed = json.loads(m.group(1))
    items = re.findall(r"^(\d+): (.*)$", prompt[m.end():], re.M)
    out = []
    for ident, title in reversed(items):
        scores = {}
        for t in (listed if tags is None else tags):
            if t.lower() in title.lower():
                s = 10 + (len(title.encode()) + len(t.encode())) % 90
                scores[t.upper()] = s + 100 if variant == "out_of_range" else s
            elif variant == "out_of_range" or tags is not None:
                scores[t] = -1 if variant == "out_of_range" else 0
        scores["bogus"] = 50
        out.append((int(ident), scores))
    return out


def choice_limit(rf):
    """maxItems of a json_schema that asks for ranked tag names (scoring: choose), or None."""
    try:
        tags = rf["json_schema"]["schema"]["properties"]["items"]["items"]["properties"]["tags"]
        return int(tags["maxItems"]) if "enum" in tags["items"] else None
    except (KeyError, TypeError):
        return None


def ranked(out, limit):
    """Scores to the tagger's choose answer: names, best first, bogus and unknown ones dropped."""
    return json.dumps({"items": [
        {"id": i, "tags": [t for t, v in sorted(sc.items(), key=lambda kv: -kv[1])
                           if t != "bogus" and v > 0][:limit]} for i, sc in out]})


def shape_scores(out, variant):
    if variant == "string_scores":  # alternating over the whole answer: both forms for every batch
        flip = [0]

        def text(v):
            flip[0] += 1
            return str(v) if flip[0] % 2 else "%d%%" % v
        out = [(i, {t: text(v) for t, v in sc.items() if t != "bogus"}) for i, sc in out]
    if variant == "renamed":
        return json.dumps({"items": [
            {("item_id" if i % 2 else "item"): i,
             ("scores" if i % 2 else "tag_scores"): {" %s  " % t: v for t, v in sc.items()}}
            for i, sc in out]})
    if variant == "keyed":
        return json.dumps({"items": {str(i): {"scores": sc} for i, sc in out}})
    if variant == "keyed_root":
        return json.dumps({str(i): sc for i, sc in out})
    text = json.dumps({"items": [{"id": i, "tags": sc} for i, sc in out]})
    if variant == "prose":
        text = "Here are the scores:\n" + text + "\nI rated each tag by how well it fits the title."
    return text


def envelope(content, finish="stop", usage=None):
    reply = {"id": "chatcmpl-test", "object": "chat.completion", "model": "test",
             "choices": [{"index": 0, "finish_reason": finish,
                          "message": {"role": "assistant", "content": content}}]}
    if usage is not None:
        reply["usage"] = {"prompt_tokens": 100, "completion_tokens": usage, "total_tokens": 100 + usage}
    return json.dumps(reply)


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

    def do_GET(self):
        props = scenario().get("props")
        with LOCK:
            STATS["props_requests"] += 1
            write_atomic(os.path.join(STATE_DIR, "stats.json"), json.dumps(STATS))
        if self.path.rstrip("/").endswith("/props") and props is not None:
            self.send_body(200, json.dumps(props))
        else:
            self.send_body(404, json.dumps({"error": {"message": "no such route"}}))

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
            rf = req.get("response_format")
            ftype = rf.get("type", "?") if isinstance(rf, dict) else "none"
            fkey = ("score:" if is_score else "vote:") + ftype
            STATS["formats"][fkey] = STATS["formats"].get(fkey, 0) + 1
            STATS["last_score_format" if is_score else "last_vote_format"] = rf
            if is_score:
                STATS["score_batch_sizes"].append(len(re.findall(r"^\d+: ", prompt, re.M)))
            attempt = ATTEMPTS.get(digest, 0)
            ATTEMPTS[digest] = attempt + 1
            failure = None
            kind = sc.get("kind", "any")
            applies = (sc.get("match", "") in prompt and
                       (kind == "any" or (kind == "score") == is_score))
            if "expect_key" in sc and auth != "Bearer " + sc["expect_key"]:
                failure = "401"
            elif ftype in sc.get("reject_format", []):
                failure = "reject_format"
                STATS["rejected_formats"] += 1
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

        variant = sc.get("variant")
        obey = schema_tags(rf) if sc.get("obey_schema") and ftype == "json_schema" else None
        limit = choice_limit(rf) if ftype == "json_schema" else None
        if is_score:
            out = score_reply(prompt, variant, obey)
            content = ranked(out, limit) if limit else shape_scores(out, variant)
        else:
            content = vote_reply(prompt, int(req.get("seed") or 0), variant)
        if sc.get("wrap"):
            content = ("<think>The user wants {JSON}; tags [like these] ...</think>\nHere you go:\n```json\n"
                       + content + "\n```\nHope this helps {:}")
        if failure is None and sc.get("delay_s"):
            time.sleep(float(sc["delay_s"]))
        if failure == "slow":
            time.sleep(float(sc.get("slow_s", 5)))
        self.leave()
        if failure is None or failure == "slow":
            self.send_body(200, envelope(content, usage=sc.get("usage")))
        elif failure == "reject_format":
            msg = "'response_format' of type '%s' is not supported by this server" % ftype
            self.send_body(400, json.dumps({"error": {"code": 400, "message": msg,
                                                      "type": "invalid_request_error"}}))
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
        elif failure == "huge":
            self.send_body(200, envelope(content + " " * (2 << 20)))
        else:
            self.send_body(500, json.dumps({"error": {"message": "unknown scripted failure " + failure}}))


def watchdog(server, parent):
    while True:
        time.sleep(0.2)
        if os.getppid() != parent or time.monotonic() - LAST_SEEN[0] > 300:
            server.shutdown()
            return


def main():
    if len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0)
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: llm_server.py STATE_DIR (an existing folder; --help for the protocol)")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    write_atomic(os.path.join(STATE_DIR, "port"), str(server.server_address[1]))
    threading.Thread(target=watchdog, args=(server, os.getppid()), daemon=True).start()
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
