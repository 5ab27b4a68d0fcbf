select count(*) from order_lines l left join orders o on o.id = l.order_id where o.id is null;
