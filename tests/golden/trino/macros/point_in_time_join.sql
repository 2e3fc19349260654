with __fh_spine as (
    select
        *,
        cast("event_timestamp" as timestamp) as __fh_ts,
        row_number() over () as __fh_row
    from "golden"."main"."spine_model"
)
, __fh_u1 as (
    select "driver_id", event_timestamp as __fh_t, 0 as __fh_kind, cast(null as bigint) as __fh_row,
           created_timestamp as __fh_c, "f_int", "f_str", "f_float"
    from "golden"."main"."fv_drv"
    where event_timestamp is not null and "driver_id" is not null
    union all
    select "driver_id", __fh_ts, 1, __fh_row, null, null, null, null
    from __fh_spine
)
, __fh_g1 as (
    select
        *,
        count(case when __fh_kind = 0 then 1 end) over (
            partition by "driver_id"
            order by __fh_t, __fh_kind, __fh_c nulls first, "f_int" nulls last, "f_str" nulls last, "f_float" nulls last
            rows between unbounded preceding and current row
        ) as __fh_grp
    from __fh_u1
)
, __fh_p1 as (
    select
        __fh_row,
        __fh_kind,
        __fh_t,
        first_value(__fh_kind) over __fh_w as __fh_winner_kind,
        first_value(__fh_t) over __fh_w as __fh_e,
        first_value("f_int") over __fh_w as "f_int",
        first_value("f_str") over __fh_w as "f_str"
    from __fh_g1
    window __fh_w as (partition by "driver_id", __fh_grp order by __fh_kind rows between unbounded preceding and current row)
)
, __fh_r1 as (
    select
        __fh_row,
        case when __fh_winner_kind = 0 and __fh_t is not null and __fh_e >= date_add('second', -3600, __fh_t)
             then "f_int" end as "f_int",
        case when __fh_winner_kind = 0 and __fh_t is not null and __fh_e >= date_add('second', -3600, __fh_t)
             then "f_str" end as "f_str"
    from __fh_p1
    where __fh_kind = 1
)
select
    s."driver_id",
    s."customer_id",
    s."event_timestamp",
    s."label",
    r1."f_int" as "f_int",
    r1."f_str" as "f_str"
from __fh_spine as s
left join __fh_r1 as r1 on r1.__fh_row = s.__fh_row
order by s.__fh_row
