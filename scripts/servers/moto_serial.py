"""moto_server that applies one request at a time.

moto's DynamoDB backend checks a ConditionExpression and then applies the
update without a lock, so under moto's threaded server two concurrent
conditional writes to one item can both succeed, which real DynamoDB never
allows (conditional writes are atomic per item). The store's conformance
suite races fenced writes against takes and catches exactly that. Serving
requests one at a time (connections stay threaded, so keep-alive works)
makes moto's conditional writes atomic, as DynamoDB's are.

Usage: python3 moto_serial.py HOST PORT
"""

import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            # The whole body is produced inside the lock, and the
            # response closed there, as WSGI asks of a server.
            body = app(environ, start_response)
            try:
                return list(body)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()

    run_simple(host, port, one_at_a_time, threaded=True)


if __name__ == "__main__":
    main()
