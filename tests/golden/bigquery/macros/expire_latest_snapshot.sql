select 1 as x; delete from `golden`.`main`.`fv_drv`
where event_timestamp <

        datetime_add(
            cast( cast('2026-01-01 12:00:00.000000' as timestamp) as datetime),
        interval -3600 second
        )
