"""DRF views: parse input, call one service or selector, serialize the result."""
