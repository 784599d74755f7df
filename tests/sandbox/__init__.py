"""Tests of the SMTP2GO sandbox, through plain HTTP against a real sandbox process."""
