"""The campaign task and its server: real people answer an exported campaign.

- `settings`: the campaign folder as the server reads it (task lists, gold pool, the
  serving settings of `annotation.campaign` in manifest.json) and the task page's build.
- `store`: the campaign database (SQLite, append-only): assignment of task lists,
  answers, completions, and the status counts.
- `server`: the ASGI app (Starlette) over the store: the task page, the participants'
  API, the admin status view.
- `export`: the database's answers in the raw-answers contract, plus a per-participant file.
- `task/`: the browser task (jsPsych), an npm project built by `make campaign-task`.
"""
