"""`python -m lpse_helpdesk`: the same as the `lpse-helpdesk` command."""

import sys

from lpse_helpdesk.cli import main

if __name__ == "__main__":  # not when a spawned helper process imports this module
    sys.exit(main())
