import sys

from crossmedia.core.cli import main

sys.exit(main())
