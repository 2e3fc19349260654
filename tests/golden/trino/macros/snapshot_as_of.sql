select cast('2026-01-01 12:00:00.000000' as timestamp) as t
