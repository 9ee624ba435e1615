"""Preference data: the sources, their normalised Parquet form, the synthetic HH world and its gold reward."""
