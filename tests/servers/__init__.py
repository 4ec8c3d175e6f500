"""Real protocol peers (Dovecot, PostgreSQL, SMTP) started on 127.0.0.1 for the tests."""
