#!/usr/bin/python3
# A collector for the publish stage of reops-run: binds a PULL socket and
# prints each row it receives, as its topic and the row's JSON object.
#   collector.py tcp://127.0.0.1:5557 [SECRET-KEY-FILE]
# ("tcp://127.0.0.1:*" takes a free port; stderr says which.)
import json, sys
import zmq

pull = zmq.Context().socket(zmq.PULL)
if len(sys.argv) > 2:  # a CURVE server: runners need its public key
    pull.curve_secretkey = open(sys.argv[2]).read().split()[0].encode()
    pull.curve_server = True
pull.bind(sys.argv[1])
print("listening on", pull.last_endpoint.decode(), file=sys.stderr,
      flush=True)
while True:
    topic, row = pull.recv_multipart()
    print(topic.decode(), json.dumps(json.loads(row)), flush=True)
