select 1 as x; delete from `golden`.`main`.`fv_drv`
where event_timestamp < timestampadd(second, -3600, cast('2026-01-01 12:00:00.000000' as timestamp))
