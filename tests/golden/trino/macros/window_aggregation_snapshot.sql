with __fh_entities as (
    select
        "driver_id",
        cast('2026-01-01 12:00:00.000000' as timestamp) as __fh_ts,
        row_number() over (order by "driver_id") as __fh_row
    from (
        select distinct "driver_id"
        from "golden"."main"."fv_drv"
        where event_timestamp <= cast('2026-01-01 12:00:00.000000' as timestamp) and "driver_id" is not null
    ) as __fh_keys
), __fh_recent as (
    select *
    from "golden"."main"."fv_drv"
    where event_timestamp > date_add('second', -7200, cast('2026-01-01 12:00:00.000000' as timestamp))
      and event_timestamp <= cast('2026-01-01 12:00:00.000000' as timestamp)
)
, __fh_values as (
select
    __fh_row,
    "f_sum_1h",
    "f_count_1h",
    "f_max_2h",
    "f_std_2h"
from (
    select
        __fh_row,
        __fh_kind,
        case when __fh_o is not null then
            cast(sum(__fh_v0) over (
                partition by "driver_id" order by __fh_o range between interval '3599.999999' second preceding and current row
            ) as double)
        end as "f_sum_1h",
        case when __fh_o is not null then
            cast(count(__fh_v0) over (
                partition by "driver_id" order by __fh_o range between interval '3599.999999' second preceding and current row
            ) as bigint)
        end as "f_count_1h",
        case when __fh_o is not null then
            cast(max(__fh_v0) over (
                partition by "driver_id" order by __fh_o range between interval '7199.999999' second preceding and current row
            ) as double)
        end as "f_max_2h",
        case when __fh_o is not null then
            cast(stddev_samp(__fh_v0) over (
                partition by "driver_id" order by __fh_o range between interval '7199.999999' second preceding and current row
            ) as double)
        end as "f_std_2h"
    from (select
            "driver_id", event_timestamp as __fh_o, 0 as __fh_kind,
            cast(null as bigint) as __fh_row,
            cast("f_float" as double) as __fh_v0
        from __fh_recent
        where event_timestamp is not null and "driver_id" is not null
        union all
        select
            "driver_id", "__fh_ts", 1, "__fh_row",
            cast(null as double)
        from __fh_entities
    ) as __fh_events_and_spine
) as __fh_windows

where __fh_kind = 1
)
select
    e."driver_id",
    e.__fh_ts as event_timestamp,
    e.__fh_ts as created_timestamp,
    v."f_sum_1h",
    v."f_count_1h",
    v."f_max_2h",
    v."f_std_2h"
from __fh_entities as e
join __fh_values as v on v.__fh_row = e.__fh_row
