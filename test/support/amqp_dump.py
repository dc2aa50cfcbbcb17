#!/usr/bin/python3
"""A RabbitMQ consumer written with a client we did not write (Debian's python3-pika), for
interoperability checks: reads messages from a queue and prints one JSON object per message with
its exchange, routing key, body, properties and headers, as pika decodes them.

    amqp_dump.py --url amqp://guest:guest@127.0.0.1:5672/%2F --queue q [--exchange x --binding '#']
                 [--count N] [--idle SECONDS] [--timeout SECONDS]

With --exchange, declares the durable queue and binds it (the exchange must exist). Stops after
--count messages (then waits --idle more seconds for unexpected extras), or when --timeout passes.
Exit status 0 when --count messages arrived, 1 otherwise. Messages are acknowledged.
"""
import argparse
import base64
import json
import sys
import time

import pika

PROPERTIES = ('app_id', 'cluster_id', 'content_encoding', 'content_type', 'correlation_id', 'delivery_mode',
              'expiration', 'message_id', 'priority', 'reply_to', 'timestamp', 'type', 'user_id')


def plain(value):
    """JSON-able form of a pika value: bytes as text (or base64 when not UTF-8), tables recursively."""
    if isinstance(value, bytes):
        try:
            return value.decode('utf-8')
        except UnicodeDecodeError:
            return {'base64': base64.b64encode(value).decode('ascii')}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, 'isoformat'):
        return value.isoformat()
    return value


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--url', default='amqp://guest:guest@127.0.0.1:5672/%2F')
    parser.add_argument('--queue', required=True)
    parser.add_argument('--exchange')
    parser.add_argument('--binding', default='#')
    parser.add_argument('--count', type=int, default=1)
    parser.add_argument('--idle', type=float, default=0.3)
    parser.add_argument('--timeout', type=float, default=30)
    args = parser.parse_args()

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    if args.exchange:
        channel.queue_declare(queue=args.queue, durable=True)
        channel.queue_bind(queue=args.queue, exchange=args.exchange, routing_key=args.binding)
    print(json.dumps({'ready': args.queue}), flush=True)

    got = 0
    deadline = time.monotonic() + args.timeout
    quiet_until = None
    for method, properties, body in channel.consume(args.queue, inactivity_timeout=0.1):
        now = time.monotonic()
        if method is None:
            if (quiet_until is not None and now >= quiet_until) or now >= deadline:
                break
            continue
        got += 1
        props = {name: plain(getattr(properties, name)) for name in PROPERTIES if getattr(properties, name) is not None}
        print(json.dumps({
            'exchange': method.exchange,
            'routing_key': method.routing_key,
            'redelivered': method.redelivered,
            'body': plain(body),
            'properties': props,
            'headers': plain(properties.headers or {}),
        }), flush=True)
        channel.basic_ack(method.delivery_tag)
        if got >= args.count and quiet_until is None:
            quiet_until = now + args.idle
    channel.cancel()
    connection.close()
    return 0 if got >= args.count else 1


if __name__ == '__main__':
    sys.exit(main())
