#!/usr/bin/env python3
"""A real OTLP/HTTP trace receiver for `cargo xtask check traces`.

Accepts POST /v1/traces in the OTLP protobuf encoding (gzip or not), decodes each request
with the official `opentelemetry-proto` messages and appends one JSON object per span to
--out: service name, trace and span ids (hex), parent span id, name, kind, link span ids and
attributes (with --count-only, one {"spans": N} line per export instead: a benchmark's
collector, cheap beside the service it measures). Answers as a collector does (an ExportTraceServiceResponse); anything it cannot
decode gets 400 and is logged, so a malformed export fails the check instead of vanishing.
Prints "listening on PORT" once ready (--port 0 picks a free one).
"""

import argparse
import gzip
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

LOCK = threading.Lock()


def value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def spans(request):
    for resource_spans in request.resource_spans:
        resource = {a.key: value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield {
                    "service": resource.get("service.name"),
                    "service_version": resource.get("service.version"),
                    "service_instance": resource.get("service.instance.id"),
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(),
                    "name": span.name,
                    "kind": span.kind,
                    "links": [link.span_id.hex() for link in span.links],
                    "attributes": {a.key: value(a.value) for a in span.attributes},
                }


class Handler(BaseHTTPRequestHandler):
    out = None
    count_only = False

    def do_POST(self):
        if self.path != "/v1/traces":
            self.send_error(404, "only /v1/traces")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            if self.headers.get("Content-Encoding", "") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            if self.count_only:
                count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
                lines = [json.dumps({"spans": count})]
            else:
                lines = [json.dumps(span) for span in spans(request)]
        except Exception as error:  # noqa: BLE001 - any undecodable body is a failed export
            print(f"otlp-receiver: undecodable export: {error}", file=sys.stderr, flush=True)
            self.send_error(400, "undecodable OTLP protobuf")
            return
        with LOCK, open(self.out, "a", encoding="utf-8") as out:
            for line in lines:
                out.write(line + "\n")
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--count-only", action="store_true")
    args = parser.parse_args()
    Handler.out = args.out
    Handler.count_only = args.count_only
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
