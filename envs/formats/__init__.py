"""Trace interchange formats: libCacheSim's oracleGeneral binary format and a plain CSV."""

from envs.formats.csv_format import read_csv, write_csv
from envs.formats.oracle_general import read_oracle_general, write_oracle_general

FORMATS = ("npz", "oracleGeneral", "csv")

__all__ = ["FORMATS", "read_csv", "read_oracle_general", "write_csv", "write_oracle_general"]
