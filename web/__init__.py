"""HTTP plumbing every feature's routes share: tokens and roles, the platform scope of a request,
bounded JSON bodies, error bodies and the audit trail. Imports nothing above recordings/telephony."""
