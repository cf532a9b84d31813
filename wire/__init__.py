"""The exchange's wire formats as typed structs (see wire.binance)."""
