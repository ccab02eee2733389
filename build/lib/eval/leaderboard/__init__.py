"""The leaderboard runner (``python -m eval.leaderboard``) and its shipped entries (sub-folders)."""
