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
, __fh_d2 as (
    select * from (
        select
            *,
            row_number() over (
                partition by "driver_id", event_timestamp, created_timestamp
                order by "f_int" desc nulls first, "f_str" desc nulls first
            ) as __fh_rank
        from "golden"."main"."fv_drv_fc"
        where event_timestamp is not null and "driver_id" is not null
    ) as ranked
    where __fh_rank = 1
)
, __fh_u2 as (
    select "driver_id", case when created_timestamp > event_timestamp then created_timestamp else event_timestamp end as __fh_t,
           0 as __fh_kind, cast(null as bigint) as __fh_row,
           (cast(date_part(epoch_microsecond, event_timestamp) as number(38, 0)) * 1000000000000000000
    + coalesce(date_part(epoch_microsecond, created_timestamp) + 100000000000000000, 0)) as __fh_key
    from __fh_d2
    union all
    select "driver_id", __fh_ts, 1, __fh_row, null
    from __fh_spine
)
, __fh_m2 as (
    select
        "driver_id", __fh_row, __fh_kind, __fh_t,
        max(__fh_key) over (
            partition by "driver_id" order by __fh_t, __fh_kind
            rows between unbounded preceding and current row
        ) as __fh_best
    from __fh_u2
)
, __fh_r2 as (
    select
        m.__fh_row,
        case when m.__fh_t is not null and d.event_timestamp >=

    dateadd(
        second,
        -3600,
        m.__fh_t
        )


             then d."f_int" end as "f_int",
        case when m.__fh_t is not null and d.event_timestamp >=

    dateadd(
        second,
        -3600,
        m.__fh_t
        )


             then d."f_str" end as "f_str"
    from __fh_m2 as m
    left join __fh_d2 as d
        on d."driver_id" = m."driver_id" and (cast(date_part(epoch_microsecond, d.event_timestamp) as number(38, 0)) * 1000000000000000000
    + coalesce(date_part(epoch_microsecond, d.created_timestamp) + 100000000000000000, 0)) = m.__fh_best
    where m.__fh_kind = 1
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


         then f1."f_str" end as "f_str",
    r2."f_int" as "drv_fc__f_int",
    r2."f_str" as "drv_fc__f_str"
from __fh_spine as s
asof join __fh_f1 as f1
    match_condition (s.__fh_ts >= f1.__fh_e)
    on f1."driver_id" = s."driver_id"
left join __fh_r2 as r2 on r2.__fh_row = s.__fh_row
order by s.__fh_row
