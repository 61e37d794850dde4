import sys

from nag.cli import main

sys.exit(main())
