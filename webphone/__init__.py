"""The seat desk's phone in the browser (WebRTC): each browser seat's phone settings, for that
seat's own token only (routes.py). Asterisk's side (the WSS transport, WebRTC endpoints) is
rendered by telephony/asterisk_conf.py; the page's side is hotline/static/seat.js."""
