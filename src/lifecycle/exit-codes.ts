/**
 * Exit statuses of the gateway process. systemd/edge-gateway.service relies on them: the unit has
 * `Restart=on-failure`, so a plain exit 0 is final. A requested restart (`ctl restart`,
 * POST /mgmt/restart, OTA) must come back, so it exits with its own status that the unit lists in
 * `RestartForceExitStatus=` (restart whatever `Restart=` says) and `SuccessExitStatus=` (not a
 * failure, so it neither logs the unit as failed nor looks like a crash).
 * test/integration/systemd.test.ts checks the unit against these numbers.
 */
export const EXIT = {
  /** Stopped on SIGTERM/SIGINT: systemd stopped us, or the operator did. */
  OK: 0,
  /** Could not start (bad config, a port in use, the data directory held by another instance). */
  START_FAILED: 1,
  /** Bad command line. */
  USAGE: 2,
  /** Uncaught exception or unhandled rejection (EX_SOFTWARE in sysexits.h). */
  FATAL: 70,
  /** A requested restart after a graceful stop (EX_TEMPFAIL in sysexits.h: "try again"). */
  RESTART: 75,
} as const;
