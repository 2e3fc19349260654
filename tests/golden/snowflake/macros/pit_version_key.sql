select (cast(date_part(epoch_microsecond, event_timestamp) as number(38, 0)) * 1000000000000000000
    + coalesce(date_part(epoch_microsecond, created_timestamp) + 100000000000000000, 0)) as k from "golden"."main"."fv_drv"
