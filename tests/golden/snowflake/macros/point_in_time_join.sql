with __fh_spine as (
    select
        *,
        cast("event_timestamp" as timestamp) as __fh_ts,
        row_number() over () as __fh_row
    from "golden"."main"."spine_model"
)
, __fh_f1 as (
    select "driver_id", event_timestamp as __fh_e, "f_int", "f_str"
    from "golden"."main"."fv_drv"
    where event_timestamp is not null and "driver_id" is not null
    qualify row_number() over (
        partition by "driver_id", event_timestamp
        order by created_timestamp desc nulls last, "f_int" desc nulls first, "f_str" desc nulls first, "f_float" desc nulls first
    ) = 1
)
select
    s."driver_id",
    s."customer_id",
    s."event_timestamp",
    s."label",
    case when s.__fh_ts is not null and f1.__fh_e >=

    dateadd(
        second,
        -3600,
        s.__fh_ts
        )


         then f1."f_int" end as "f_int",
    case when s.__fh_ts is not null and f1.__fh_e >=

    dateadd(
        second,
        -3600,
        s.__fh_ts
        )


         then f1."f_str" end as "f_str"
from __fh_spine as s
asof join __fh_f1 as f1
    match_condition (s.__fh_ts >= f1.__fh_e)
    on f1."driver_id" = s."driver_id"
order by s.__fh_row
