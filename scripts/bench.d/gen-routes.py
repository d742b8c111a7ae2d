#!/usr/bin/env python3
"""Writes proxy-weir-routes.yaml.in: the bench's single upstream behind a
routing table of 1,000 routes, the last of which takes the bench's
requests and sets two request headers.

    scripts/bench.d/gen-routes.py > scripts/bench.d/proxy-weir-routes.yaml.in
"""

HOSTS = 249           # other sites, each with four routes
PER_HOST = ["prefix: /api/v1", "prefix: /api/v2", "prefix: /static", "exact: /healthz"]

print("""# weir with 1,000 routes (issue 21's budget check): proxy-weir.yaml.in's
# one backend, reached through a routing table of 1,000 routes: four for
# each of 249 other sites, then three more prefixes and the catch-all for
# the bench's host, which takes its requests and sets two request headers.
# Compare it with proxy-weir.yaml.in in one interleaved run:
#   scripts/bench --proxies weir,weir-base \\
#     --weir-config scripts/bench.d/proxy-weir-routes.yaml.in \\
#     --baseline-config scripts/bench.d/proxy-weir.yaml.in
# Written by scripts/bench.d/gen-routes.py; @PLACEHOLDERS@ are filled in
# by scripts/bench.
version: 1
threads: 1
upstream_keepalive_pool_size: 4096
upstreams:
  app:
    backends: ["127.0.0.1:@BACKEND_PORT@"]
    selection: round_robin
services:
  - name: lb
    kind: http_proxy
    listen: [@LISTEN@]
    request_id: false
    routes:""")
for h in range(HOSTS):
    for i, path in enumerate(PER_HOST):
        print(f"      - {{name: s{h}-{i}, match: {{host: site-{h}.example.test, path: {{{path}}}}}, upstream: app}}")
for i, prefix in enumerate(["/api/", "/admin/", "/static/"]):
    print(f"      - {{name: local-{i}, match: {{host: 127.0.0.1, path: {{prefix: {prefix}}}}}, upstream: app}}")
print("""      - name: bench
        match: {host: 127.0.0.1}
        upstream: app
        request_headers:
          set: {X-Real-IP: "{client_ip}", X-Route: bench}""")
