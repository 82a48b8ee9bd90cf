"""Exports of gold tables in the file formats of earlier tools, so their notebooks and spreadsheets keep working."""
