"""The Copilot: an HTTP API (:mod:`app.api`) and a Streamlit dashboard (:mod:`app.dashboard`) over one service
(:mod:`app.service`), which calls the same library as the CLIs and the leaderboard."""
