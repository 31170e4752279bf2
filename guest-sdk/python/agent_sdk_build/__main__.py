"""`python -m agent_sdk_build APP_DIR MODULE OUT.wasm`: see `agent_sdk_build`."""

import sys

from agent_sdk_build import main

sys.exit(main())
