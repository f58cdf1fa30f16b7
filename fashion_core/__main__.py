"""`python -m fashion_core`: see `fashion_core.cli`."""

import sys

try:
    from fashion_core.cli import main
except ValueError as error:  # KerasBackendError: a Keras set to another backend is refused as the library loads
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)

sys.exit(main())
