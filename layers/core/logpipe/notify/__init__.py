"""The alert notifier: CloudWatch alarm notifications from the ``pacs-alerts`` topic to Slack and Microsoft Teams.

``alarm`` reads the SNS records, ``links`` builds the console links, ``context`` reads the top errors of
the alarm's window from Logs Insights, ``render`` turns a notification into a Slack Block Kit message
and a Teams Workflows Adaptive Card, ``routing`` decides which channels get it, ``webhook`` and
``channels`` post it, ``guard`` makes each post happen once per channel, and ``notifier`` ties them.
"""
