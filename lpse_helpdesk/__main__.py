import sys

from lpse_helpdesk.cli import main

sys.exit(main())
