"""`python -m lpse_helpdesk`: the same as the `lpse-helpdesk` command."""

import sys

if __name__ == "__main__":  # not when a spawned helper process imports this module
    from lpse_helpdesk.cli import main

    sys.exit(main())
