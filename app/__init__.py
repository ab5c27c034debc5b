"""LUTFuse Qt editor: a thin view over core."""
