"""The supervisors' live wallboard (issue 14, item 2): today's figures per queue and platform,
seats by state, threshold alerts, pushed over a websocket (``GET /api/v1/wallboard``)."""
