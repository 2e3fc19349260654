select
    "driver_id",
    event_timestamp,
    created_timestamp,
    "f_int",
    "f_str",
    "f_float"
from (
    select
        *,
        row_number() over (
            partition by "driver_id"
            order by event_timestamp desc, created_timestamp desc nulls last, "f_int" desc nulls first, "f_str" desc nulls first, "f_float" desc nulls first
        ) as __fh_rank
    from "golden"."main"."fv_drv"
    where event_timestamp is not null and "driver_id" is not null
        and event_timestamp <= cast('2026-01-01 12:00:00.000000' as timestamp) and event_timestamp >=

    dateadd(
        second,
        -3600,
        cast('2026-01-01 12:00:00.000000' as timestamp)
        )


) as __fh_ranked
where __fh_rank = 1
