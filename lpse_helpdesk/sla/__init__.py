"""SLA clocks in use: reminders before a step's deadline, alerts after, a morning summary.

`monitor.SlaMonitor` scans the stored clocks and queues Telegram notices; `scheduler`
runs it periodically; `texts` holds what staff read. The clocks themselves are kept by
`lpse_helpdesk.workflow.sla.SlaKeeper` as the SOP's actions are applied.
"""
