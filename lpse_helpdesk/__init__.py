"""lpse-helpdesk: the LPSE e-mail helpdesk run from a Telegram group."""
