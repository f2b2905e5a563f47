"""The DICOM network node: CT arrives by C-STORE, the RTSTRUCT goes back the same way.

- ``spool``: received instances on disk, one folder per study/series, written atomically;
- ``jobs``: the persistent job queue (SQLite, WAL) that survives a restart;
- ``scp``: the pynetdicom C-ECHO / C-STORE service and who sent what when;
- ``sender``: C-STORE of an RTSTRUCT to a destination, with retries and back-off;
- ``worker``: one job: contour (the same code as ``cervseg segment``), write, send;
- ``server``: puts them together for ``cervseg serve``.
"""
