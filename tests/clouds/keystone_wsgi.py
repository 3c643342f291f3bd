"""Keystone's public WSGI application for gunicorn.

Keystone parses sys.argv as its own command line when it starts; under
gunicorn that holds gunicorn's flags, so it is reset first.
"""

import sys

sys.argv = sys.argv[:1]

from keystone.server.wsgi import initialize_public_application  # noqa: E402

application = initialize_public_application()
