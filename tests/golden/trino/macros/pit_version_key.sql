select (date_format(event_timestamp, '%Y%m%d%H%i%s%f')
    || coalesce(date_format(created_timestamp, '%Y%m%d%H%i%s%f'), '')) as k from "golden"."main"."fv_drv"
