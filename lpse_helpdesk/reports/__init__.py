"""The SOP's recap ("Rekap Penanganan Permasalahan Melalui E-mail") and its SLA figures.

`period` parses what a supervisor asks for, `data` streams the tickets of a period,
`lines` turns a ticket into the SOP's columns, and one module per format writes them
(`xlsx`, `csv_export`, `pdf`, `chart`); `export` picks the format. Nothing here sends
anything: the bot, the scheduler and the CLI call these functions.
"""
