"""Operations a user runs by hand, beside the pipeline: export and backup.

Nothing here runs inside the processing flow. `ops.export` makes
location-free copies of photos to share; `ops.backup` snapshots the daemon's
state directory while it runs and puts a snapshot back. `vaultctl` calls them.

The functions are deliberately not re-exported here: `ops.backup.backup`
would shadow its own module, and the export should not pull in the
database and LanceDB imports that backups need.
"""
