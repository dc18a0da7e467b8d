import sys

from compression.cli.main import main

sys.exit(main())
