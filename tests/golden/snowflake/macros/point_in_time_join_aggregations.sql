with __fh_spine as (
    select
        *,
        cast("event_timestamp" as timestamp) as __fh_ts,
        row_number() over () as __fh_row
    from "golden"."main"."spine_model"
)
, __fh_r1 as (
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
            ) as float)
        end as "f_sum_1h",
        case when __fh_o is not null then
            cast(count(__fh_v0) over (
                partition by "driver_id" order by __fh_o range between interval '3599.999999' second preceding and current row
            ) as bigint)
        end as "f_count_1h",
        case when __fh_o is not null then
            cast(max(__fh_v0) over (
                partition by "driver_id" order by __fh_o range between interval '7199.999999' second preceding and current row
            ) as float)
        end as "f_max_2h",
        case when __fh_o is not null then
            cast(stddev_samp(__fh_v0) over (
                partition by "driver_id" order by __fh_o range between interval '7199.999999' second preceding and current row
            ) as float)
        end as "f_std_2h"
    from (select
            "driver_id", event_timestamp as __fh_o, 0 as __fh_kind,
            cast(null as bigint) as __fh_row,
            cast("f_float" as float) as __fh_v0
        from "golden"."main"."fv_drv"
        where event_timestamp is not null and "driver_id" is not null
        union all
        select
            "driver_id", "__fh_ts", 1, "__fh_row",
            cast(null as float)
        from __fh_spine
    ) as __fh_events_and_spine
) as __fh_windows

where __fh_kind = 1
)
select
    s."driver_id",
    s."customer_id",
    s."event_timestamp",
    s."label",
    r1."f_sum_1h" as "agg__f_sum_1h",
    r1."f_count_1h" as "agg__f_count_1h"
from __fh_spine as s
left join __fh_r1 as r1 on r1.__fh_row = s.__fh_row
order by s.__fh_row
